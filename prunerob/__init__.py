"""prunerob: how pruning changes adversarial robustness (a re-runnable study).

One module per responsibility; see DESIGN.md in the book's reproducibility chapter.
"""

__version__ = "0.1.0"
