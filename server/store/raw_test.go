package store

import (
	"slices"
	"sync"
	"testing"

	"gorm.io/gorm/schema"
)

// scanStep reads stepColumnNames into stepRow's fields by position: the
// list must name every column in the struct's order, as gorm maps them.
func TestStepColumnsFollowStepRow(t *testing.T) {
	sch, err := schema.Parse(&stepRow{}, &sync.Map{}, schema.NamingStrategy{})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range sch.Fields {
		want = append(want, f.DBName)
	}
	if !slices.Equal(stepColumnNames, want) {
		t.Fatalf("stepColumnNames = %v\nstepRow maps to  %v", stepColumnNames, want)
	}
}

func TestBindWritesDollarPlaceholders(t *testing.T) {
	if got := postgresDialect.bind(`UPDATE t SET a = ?, b = ? WHERE id = ?`); got != `UPDATE t SET a = $1, b = $2 WHERE id = $3` {
		t.Errorf("postgres bind = %q", got)
	}
	if got := sqliteDialect.bind(`SELECT ?`); got != `SELECT ?` {
		t.Errorf("sqlite bind = %q", got)
	}
}
