from edgenode.cli import main

raise SystemExit(main())
