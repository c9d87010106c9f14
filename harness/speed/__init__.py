"""Speed measurement: timing core, images/s benchmark, hardware floors."""
