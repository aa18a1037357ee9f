package mappings_test

import (
	"fmt"

	"github.com/signpost-health/signpost/mappings"
)

func ExampleTable_Lookup() {
	category := mappings.TriageCategory // codes not in the table go to a link worker
	if e, ok := mappings.Default().Lookup(mappings.SystemSNOMED, "710911006"); ok {
		category = e.Category
	}
	fmt.Println(category, "-", mappings.CategoryLabel(category))
	// Output: housing - Housing
}

func ExampleValidSCTID() {
	fmt.Println(mappings.ValidSCTID("390893007"))
	fmt.Println(mappings.ValidSCTID("390893008"))
	// Output:
	// <nil>
	// SNOMED CT check digit is wrong (Verhoeff)
}
