package mappings

import (
	"errors"
	"testing"
)

// wantDefault is written out independently of referral-codes.csv so that an
// accidental edit to the embedded file shows up as a test failure.
var wantDefault = map[string]string{
	"871731000000106": CategoryLinkWorker,
	"390893007":       CategoryPhysicalActivity,
	"771491000000104": CategoryHealthyLifestyle,
	"315232003":       CategoryHealthyLifestyle,
	"413125004":       CategoryLinkWorker,
	"710915002":       CategoryCommunityActivities,
	"711281004":       CategoryPeerSupport,
	"710908005":       CategoryPeerSupport,
	"308463006":       CategorySocialConnection,
	"702982008":       CategoryCarers,
	"306249006":       CategoryEmotionalSupport,
	"306225008":       CategoryEmotionalSupport,
	"199081000000108": CategoryMentalWellbeing,
	"710913009":       CategoryMoneyDebtBenefits,
	"710911006":       CategoryHousing,
	"710910007":       CategoryLegalAdvice,
	"713109004":       CategoryFood,
	"415271004":       CategoryLearning,
	"18781004":        CategoryEmployment,
	"41920009":        CategoryLinkWorker,
	"306158008":       CategoryArts,
	"306156007":       CategoryArts,
	"306157003":       CategoryArts,
	"390857005":       CategorySubstanceUse,
}

func TestVerhoeffKnownGood(t *testing.T) {
	t.Parallel()
	good := []string{
		"0",                // the empty number with its check digit
		"2363",             // the worked example usually given for the scheme
		"123451",           // these two exercise digits other than 0 in the
		"1234567890120",    // second position, which no concept SCTID has
		"306238000",        // Social Services: valid, just not in the table
		"2140231000000104", // Pharmacy First: likewise
		"138875005",        // the SNOMED CT root concept
		"404684003",        // Clinical finding
		"71388002",         // Procedure
		"73211009",         // Diabetes mellitus
	}
	for code := range wantDefault {
		good = append(good, code)
	}
	for _, s := range good {
		t.Run(s, func(t *testing.T) {
			t.Parallel()
			if !VerhoeffValid(s) {
				t.Errorf("VerhoeffValid(%q) = false, want true", s)
			}
		})
	}
}

func TestVerhoeffKnownBad(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"wrong check digit", "2364"},
		{"spec example", "390893008"},
		{"letter", "39089300a"},
		{"space", "390893 07"},
		{"sign", "-390893007"},
		{"non-ASCII digit", "39089300٧"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if VerhoeffValid(tt.in) {
				t.Errorf("VerhoeffValid(%q) = true, want false", tt.in)
			}
		})
	}
}

// TestVerhoeffCatchesTypos checks the property that justifies the scheme,
// on every embedded code: any one digit changed, or any two adjacent
// different digits swapped, must fail.
func TestVerhoeffCatchesTypos(t *testing.T) {
	t.Parallel()
	for code := range wantDefault {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			for i := range len(code) {
				for d := byte('0'); d <= '9'; d++ {
					if d == code[i] {
						continue
					}
					b := []byte(code)
					b[i] = d
					if VerhoeffValid(string(b)) {
						t.Errorf("digit %d changed to %c: %s passes", i+1, d, b)
					}
				}
			}
			for i := 0; i+1 < len(code); i++ {
				if code[i] == code[i+1] {
					continue
				}
				b := []byte(code)
				b[i], b[i+1] = b[i+1], b[i]
				if VerhoeffValid(string(b)) {
					t.Errorf("digits %d and %d swapped: %s passes", i+1, i+2, b)
				}
			}
		})
	}
}

// TestVerhoeffTables rebuilds both tables from their mathematical
// definition rather than trusting the literals: SNOMED CT concept
// identifiers always have 0 in the second position, so real codes alone
// never exercise most of the permutation table's rows.
func TestVerhoeffTables(t *testing.T) {
	t.Parallel()
	// D5: 0-4 are the rotations r^k, 5-9 the reflections s·r^k.
	mul := func(i, j int) int {
		switch {
		case i < 5 && j < 5:
			return (i + j) % 5
		case i < 5:
			return 5 + (i+j-5)%5
		case j < 5:
			return 5 + (i-5-j+5)%5
		default:
			return (i - j + 10) % 5
		}
	}
	for i := range 10 {
		for j := range 10 {
			if got := int(verhoeffD[i][j]); got != mul(i, j) {
				t.Errorf("verhoeffD[%d][%d] = %d, want %d", i, j, got, mul(i, j))
			}
		}
	}
	// The basic permutation, written as its cycles (0 1 5 8 9 4 2 7)(3 6).
	var perm [10]int
	for _, cycle := range [][]int{{0, 1, 5, 8, 9, 4, 2, 7}, {3, 6}} {
		for k, v := range cycle {
			perm[v] = cycle[(k+1)%len(cycle)]
		}
	}
	var row [10]int
	for j := range row {
		row[j] = j
	}
	for i := range 8 {
		for j := range 10 {
			if got := int(verhoeffP[i][j]); got != row[j] {
				t.Errorf("verhoeffP[%d][%d] = %d, want %d", i, j, got, row[j])
			}
		}
		for j := range row {
			row[j] = perm[row[j]]
		}
	}
	for j := range row {
		if row[j] != j {
			t.Fatal("permutation does not have order 8")
		}
	}
}

func TestValidSCTID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want error // nil for valid
	}{
		{"short form concept", "390893007", nil},
		{"long form concept", "871731000000106", nil},
		{"shortest", "100005", nil},
		{"empty", "", ErrSCTIDLength},
		{"too short", "10000", ErrSCTIDLength},
		{"too long", "1234567890123456789", ErrSCTIDLength},
		{"letter", "39089300X", ErrSCTIDDigits},
		{"inner space", "3908 93007", ErrSCTIDDigits},
		{"leading zero", "0390893007", ErrSCTIDLeadingZero},
		{"description partition", "1234567011", ErrSCTIDPartition},
		{"relationship partition", "1234567021", ErrSCTIDPartition},
		{"long form description", "1234567111", ErrSCTIDPartition},
		{"unknown partition", "1234567051", ErrSCTIDPartition},
		{"check digit", "390893008", ErrSCTIDCheckDigit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidSCTID(tt.in)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("ValidSCTID(%q) = %v, want nil", tt.in, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("ValidSCTID(%q) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

func TestCategories(t *testing.T) {
	t.Parallel()
	want := []string{
		"link-worker", "physical-activity", "healthy-lifestyle", "social-connection",
		"community-activities", "peer-support", "carers", "emotional-support",
		"mental-wellbeing", "money-debt-benefits", "housing", "legal-advice", "food",
		"learning", "employment", "arts", "substance-use",
	}
	got := Categories()
	if len(got) != len(want) {
		t.Fatalf("Categories() has %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Categories()[%d] = %q, want %q", i, got[i], want[i])
		}
		if !IsCategory(want[i]) {
			t.Errorf("IsCategory(%q) = false", want[i])
		}
		if CategoryLabel(want[i]) == "" {
			t.Errorf("CategoryLabel(%q) is empty", want[i])
		}
	}
	got[0] = "mutated"
	if Categories()[0] != "link-worker" {
		t.Error("Categories() shares its backing array with callers")
	}
	if TriageCategory != "link-worker" {
		t.Errorf("TriageCategory = %q", TriageCategory)
	}
	if CategoryLabel(TriageCategory) != "Link worker / general social needs" {
		t.Errorf("CategoryLabel(TriageCategory) = %q", CategoryLabel(TriageCategory))
	}
	for _, s := range []string{"", "Link-Worker", "link-worker ", "other"} {
		if IsCategory(s) || CategoryLabel(s) != "" {
			t.Errorf("%q accepted as a category", s)
		}
	}
}
