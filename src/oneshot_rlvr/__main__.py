from oneshot_rlvr.cli import main

raise SystemExit(main())
