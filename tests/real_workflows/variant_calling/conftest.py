# files/ is copied into a generated repository by port.py: its tests run there (make test), not here.
collect_ignore = ["files"]
