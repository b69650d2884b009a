from cidash.cli import main

raise SystemExit(main())
