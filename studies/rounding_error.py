"""How does the error of each finite-difference scheme depend on the step h, in float32 and float64,
and how close do the automatic step and the theoretical optimum come to the best step?

Run: python studies/rounding_error.py [--quick] [--out DIR] [--jobs N] [--device cpu|cuda|all]
The grid and the measurements are in diffsuite/study/studies/rounding_error.py (``Config`` holds the decisions).
"""
import sys

from diffsuite.cli.run import script_main

if __name__ == "__main__":
    sys.exit(script_main("rounding_error"))
