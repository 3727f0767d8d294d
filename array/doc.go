// Package array is the lab array group: a simulated PS-Series-style
// group of members that serves thin, paged volumes over iSCSI on
// loopback, for hitkit's demos and tests.
//
// A Group owns:
//   - members, each with Ethernet ports (portals of one target.Server,
//     one TPGT per port) and a state (online, failing over, or
//     uninitialised and serving nothing);
//   - volumes, each one iSCSI target with one disk.Disk at LUN 0, whose
//     bytes are spread page by page over the members' sparse files;
//   - the group IP, where discovery lists every volume and Normal logins
//     are redirected to the least busy member port;
//   - fault injection (port down, blackhole, latency, control-module
//     failover, async logout requests);
//   - a control socket for `hitkit lab status|fault|down`.
//
// Address plan, from a base address BASE (127.0.10.0 by default):
//
//	group IP              BASE+1:3260     (TPGT 1)
//	member m, port p      BASE+10*m+p:3260 (TPGT 10*m+p)
//	management API        BASE+1:8443     (a separate service; see Options.Services)
//
// A volume's pages go round-robin to the online members (see PageMap);
// a member that joins through the setup wizard gets its share of every
// volume's pages (see SetUpMember and Volume.Rebalance). Every port serves every volume; a command
// that touches a page its member does not hold is forwarded: it costs the
// group's forwarding latency once and is counted per member and per
// volume. Data always goes through the volume's one disk.Disk, so
// reservations and unit attentions are shared by all paths.
//
// On disk, under the group's directory DIR:
//
//	DIR/group.json                       configuration, written atomically
//	DIR/members/<m>/volumes/<vol>.data   member m's pages of a volume, sparse
//	DIR/secrets/admin.password           the group admin password (0600)
//	DIR/secrets/membership.password      lets a member join the group (0600)
//	DIR/members/<m>/setup/mgmt/*.pem     member m's setup endpoint certificate (array/setup)
//	DIR/secrets/<vol>.chap               a volume's CHAP secret (0600)
//	DIR/secrets/mutual.secret            the group's mutual-CHAP secret (0600)
//	DIR/control.sock                     the control socket (0600)
//	DIR/lab.log, DIR/lab.pid             written by `hitkit lab up`
package array
