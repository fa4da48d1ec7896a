"""The environment variables dlkit reads. The first two are yours to set; dlkit sets the others for the processes it
starts (a parallel sweep's workers, a SLURM job, the DDP processes Lightning starts beside rank 0)."""

DEBUG = "DLKIT_DEBUG"  # 1: a user error shows its traceback instead of one line
PLUGINS = "DLKIT_PLUGINS"  # 0: no plugin is discovered or loaded
SWEEP_SIZE = "DLKIT_SWEEP_SIZE"  # the number of jobs of the sweep being launched: "[job 3/12]", the parent's tag
SWEEP_LEDGER = "DLKIT_SWEEP_LEDGER"  # the file a sweep's jobs note their end in (dlkit/progress.py)
DDP_CONFIG = "DLKIT_DDP_CONFIG"  # where rank 0 hands its job's resolved config to the DDP processes beside it
DDP_CHECKPOINT = "DLKIT_DDP_CHECKPOINT"  # the checkpoint rank 0 resumes from, for those processes
