"""How large do symbolic derivatives get as the network deepens, how much does common-subexpression
elimination recover, and is the CSE'd gradient program as cheap as the reverse-mode tape?

Run: python studies/expression_growth.py [--quick] [--out DIR] [--jobs N] [--device cpu|cuda|all]
The grid and the measurements are in diffsuite/study/studies/expression_growth.py (``Config`` holds the decisions).
"""
import sys

from diffsuite.cli.run import script_main

if __name__ == "__main__":
    sys.exit(script_main("expression_growth"))
