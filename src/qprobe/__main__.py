from qprobe.cli.main import main

main()
