# Tiny test runner for MicroPython (and CPython): imports each test module, calls every test_* function.
# Prints "PASS name" / "FAIL name: error" per test and a closing line "N passed, M failed".
import sys


def run(module_names):
    passed = 0
    failed = 0
    for module_name in module_names:
        module = __import__(module_name)
        for name in sorted(dir(module)):
            if not name.startswith("test_"):
                continue
            test = getattr(module, name)
            try:
                test()
            except Exception as exc:  # noqa: BLE001 - a runner reports every failure
                failed += 1
                print("FAIL %s.%s: %r" % (module_name, name, exc))
                if hasattr(sys, "print_exception"):
                    sys.print_exception(exc, sys.stdout)
            else:
                passed += 1
                print("PASS %s.%s" % (module_name, name))
    print("%d passed, %d failed" % (passed, failed))
    return failed
