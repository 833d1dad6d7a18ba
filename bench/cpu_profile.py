"""Run a module under cProfile counting CPU time, not wall time (on a shared machine, wall
time charges a process for the moments it was not even running).

    python -m bench.cpu_profile OUT.prof services.pusher

The profile is written when the module exits (SIGTERM stops a service cleanly); read it
with `python -m pstats OUT.prof`.
"""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    output, module = sys.argv[1], sys.argv[2]
    sys.argv = [module, *sys.argv[3:]]
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profile.disable()
        profile.dump_stats(output)


if __name__ == "__main__":
    main()
