from showup.cli import main

main()
