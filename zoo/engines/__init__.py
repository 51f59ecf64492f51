"""Where images are segmented: the per-image pipeline and its outputs (segment, video), and the Ray engine that runs
the same pipeline on a cluster (ray_cluster, shipping, distributed, ray_eval)."""
