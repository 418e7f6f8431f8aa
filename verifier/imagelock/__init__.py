"""imagelock: container images any third party can rebuild bit for bit and vouch for."""

__version__ = "0.1.0"
