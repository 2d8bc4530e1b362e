// Command temporal-sql-tool is Temporal's SQL schema tool (create-database, setup-schema,
// update-schema…) for scripts/cluster.sh, upstream's cmd/tools/sql at the go.temporal.io/server
// version go.mod requires, built from this module so that it reuses the packages the cheops binary
// has already compiled. It loads only the PostgreSQL plugin. Test infrastructure, not the product.
package main

import (
	"os"

	_ "go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql" // registers postgres12
	"go.temporal.io/server/tools/sql"
)

func main() {
	// RunTool prints its own errors.
	if err := sql.RunTool(os.Args); err != nil {
		os.Exit(1)
	}
}
