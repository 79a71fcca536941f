from tinydiff.cli import main

raise SystemExit(main())
