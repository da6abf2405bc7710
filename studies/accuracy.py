"""How far from the exact gradient is each differentiator, across activations, losses, regularisation,
float32 and float64, and what happens near kinks?

Run: python studies/accuracy.py [--quick] [--out DIR] [--jobs N] [--device cpu|cuda|all]
The grid and the measurements are in diffsuite/study/studies/accuracy.py (``Config`` holds the decisions).
"""
import sys

from diffsuite.cli.run import script_main

if __name__ == "__main__":
    sys.exit(script_main("accuracy"))
