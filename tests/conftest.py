# Shared by unit and integration tests: make `ansible_collections.perry.fleet` importable from this tree.
import os
import sys

COLLECTIONS = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "/opt/perry-fleet/collections").split(":")[0]
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
