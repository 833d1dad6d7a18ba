from services.matcher.app import main

main()
