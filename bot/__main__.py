from salesintel.bot.launch import main

main()
