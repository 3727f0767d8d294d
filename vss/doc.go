// Package vss makes host-consistent copies of array volumes ("smart
// copies"), the job a VSS hardware provider does on other systems:
//
//   - Create freezes the filesystem on a connected volume (FIFREEZE),
//     takes the array snapshot, and thaws at once, whatever happens;
//   - Mount sets a snapshot online, connects it read-only through hitkitd,
//     and mounts it; Unmount undoes all of it; Cleanup and OnlineSnapshots
//     find snapshots that a crash left online;
//   - Backup copies a snapshot, or only the blocks that changed since an
//     earlier one, into a self-describing image with a manifest, and sets
//     the snapshot offline again; Restore writes a chain of images back.
//
// The array is reached through its management API (package groupapi) and
// the snapshot's own iSCSI target; nothing here imports the lab array.
package vss
