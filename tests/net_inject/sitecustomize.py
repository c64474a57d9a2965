"""Test-only: widens a window in a home's agent when PYCSP_TEST_HANDBACK_DELAY is set.

A worker that completed a READ or WRITE waits that many seconds before handing
its reply to the agent's main thread, as on a busy machine (test_net_signals.py
puts this folder on the path of the home it starts; the agent inherits it)."""
import os
import sys

_DELAY = float(os.environ.get("PYCSP_TEST_HANDBACK_DELAY", "0") or 0)

if _DELAY:
    import importlib.abc
    import importlib.machinery

    class _SlowHandBack(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "pycsp.net._agent":
                return None
            sys.meta_path.remove(self)
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            run_module = spec.loader.exec_module

            def exec_module(module):
                run_module(module)
                import time
                hand_back = module.Agent.hand_back
                wire = module._wire

                def slow_hand_back(self, number, join, identity, header, outcome):
                    if (outcome is not None and outcome[0] in (wire.DATA, wire.OK)
                            and header.op in (wire.READ, wire.WRITE)):
                        time.sleep(_DELAY)
                    return hand_back(self, number, join, identity, header, outcome)

                module.Agent.hand_back = slow_hand_back

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _SlowHandBack())
