// Package e2e holds end-to-end tests that join the host side and the lab
// array side: hitkit's initiator against hitkit's own target engine, and
// later the multipath device against a lab group. It has no code of its
// own.
package e2e
