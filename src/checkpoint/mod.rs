//! The git layer: snapshots of the workspace, step commits on hidden refs, rewind.
