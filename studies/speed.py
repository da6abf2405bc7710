"""How does the time of one gradient grow with the number of parameters for each differentiator, how
much is one-time setup, and how many forward passes does a gradient cost?

Run: python studies/speed.py [--quick] [--out DIR] [--jobs N] [--device cpu|cuda|all]
The grid and the measurements are in diffsuite/study/studies/speed.py (``Config`` holds the decisions).
"""
import sys

from diffsuite.cli.run import script_main

if __name__ == "__main__":
    sys.exit(script_main("speed"))
