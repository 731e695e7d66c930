"""Code the tests share and run, that is no test itself: tiny grids and synthetic grid results (grid_data.py),
and the step hooks that stop a run at a chosen update in another process (step_hooks.py, hooked_lenet5.py).
Importable as `helpers` (pytest puts tests/ on sys.path, as for `conftest`)."""
