"""Suite-wide settings."""

import torch

# The suite runs on 2 cores with pytest-xdist (`-n 2`): one torch thread per worker avoids oversubscription,
# and the tensors in these tests are small enough that a second thread only adds synchronisation.
torch.set_num_threads(1)
