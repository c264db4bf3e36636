from pathlib import Path

# The checkout: its configs/, and the code that Ray's trial processes import.
REPO = Path(__file__).resolve().parents[1]
