from services.api.server import main

main()
