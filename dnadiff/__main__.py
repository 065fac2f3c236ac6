from dnadiff.cli import main

raise SystemExit(main())
