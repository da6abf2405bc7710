"""How accurate are Hessians and Hessian-vector products from each method, what does an HVP cost against a
gradient as networks grow, and how do symbolic Hessians grow with depth next to the gradient?

Run: python studies/second_order.py [--quick] [--out DIR] [--jobs N]
The grid and the measurements are in diffsuite/study/studies/second_order.py (``Config`` holds the decisions).
"""
import sys

from diffsuite.cli.run import script_main

if __name__ == "__main__":
    sys.exit(script_main("second_order"))
