"""Does the choice of differentiator change minibatch training (loss, test accuracy, trajectory, time to a
target accuracy), and how do L1 and L2 change the weights?

Run: python studies/training.py [--quick] [--out DIR]
The grid and the measurements are in diffsuite/study/studies/training.py (``Config`` holds the decisions).
"""
import sys

from diffsuite.cli.run import script_main

if __name__ == "__main__":
    sys.exit(script_main("training"))
