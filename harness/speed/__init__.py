"""Speed measurement: hardware floors measured in-process and the AR sampler's floor report."""
