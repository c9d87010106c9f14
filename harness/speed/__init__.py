"""Speed: hardware floors, the images/s benchmark (`bench`), and the regression gate."""
