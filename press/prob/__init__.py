"""From network outputs to probabilities: block energies, speaker permutation, the Student-t
likelihood, exit probabilities and calibration."""
