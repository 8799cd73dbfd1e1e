from emotau.cli import main

main()
