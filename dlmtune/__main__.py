from dlmtune.cli import main

main()
