from services.pusher.app import main

main()
