// Command hitkit is the Host Integration Toolkit for iSCSI SANs.
package main

import (
	"os"

	"github.com/hitkit/hitkit/cmd"
)

func main() {
	os.Exit(cmd.Main(os.Args))
}
