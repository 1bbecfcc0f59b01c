from edgenode.cli.main import main

raise SystemExit(main())
