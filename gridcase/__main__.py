from gridcase.cli import main

main()
