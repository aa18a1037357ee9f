package mappings

// The social prescribing categories. They are a closed set because
// downstream services (directories of local provision, reporting) are keyed
// on them: a category invented in a local table would route referrals
// nowhere, so it is a load error instead.
const (
	CategoryLinkWorker          = "link-worker"
	CategoryPhysicalActivity    = "physical-activity"
	CategoryHealthyLifestyle    = "healthy-lifestyle"
	CategorySocialConnection    = "social-connection"
	CategoryCommunityActivities = "community-activities"
	CategoryPeerSupport         = "peer-support"
	CategoryCarers              = "carers"
	CategoryEmotionalSupport    = "emotional-support"
	CategoryMentalWellbeing     = "mental-wellbeing"
	CategoryMoneyDebtBenefits   = "money-debt-benefits"
	CategoryHousing             = "housing"
	CategoryLegalAdvice         = "legal-advice"
	CategoryFood                = "food"
	CategoryLearning            = "learning"
	CategoryEmployment          = "employment"
	CategoryArts                = "arts"
	CategorySubstanceUse        = "substance-use"
)

// TriageCategory is where a referral goes when its reason does not point
// at one specific kind of help: a link worker talks to the person first and
// decides. Callers use it as the fallback for codes missing from the table.
const TriageCategory = CategoryLinkWorker

type categoryInfo struct {
	name, label string
}

// categoryList fixes the order used everywhere categories are listed, so
// that summaries and error messages read the same from run to run.
var categoryList = []categoryInfo{
	{CategoryLinkWorker, "Link worker / general social needs"},
	{CategoryPhysicalActivity, "Physical activity"},
	{CategoryHealthyLifestyle, "Healthy lifestyle (weight, smoking)"},
	{CategorySocialConnection, "Social connection and loneliness"},
	{CategoryCommunityActivities, "Community activities and groups"},
	{CategoryPeerSupport, "Peer support and self-help"},
	{CategoryCarers, "Support for carers"},
	{CategoryEmotionalSupport, "Emotional support and counselling"},
	{CategoryMentalWellbeing, "Mental wellbeing"},
	{CategoryMoneyDebtBenefits, "Money, debt and benefits"},
	{CategoryHousing, "Housing"},
	{CategoryLegalAdvice, "Legal advice"},
	{CategoryFood, "Food"},
	{CategoryLearning, "Learning and education"},
	{CategoryEmployment, "Employment"},
	{CategoryArts, "Arts and creativity"},
	{CategorySubstanceUse, "Alcohol and substance use"},
}

var categoryIndex = func() map[string]int {
	m := make(map[string]int, len(categoryList))
	for i, c := range categoryList {
		m[c.name] = i
	}
	return m
}()

// Categories returns a fresh slice each time so that no caller can reorder
// or extend the closed set for everyone else.
func Categories() []string {
	out := make([]string, len(categoryList))
	for i, c := range categoryList {
		out[i] = c.name
	}
	return out
}

// IsCategory is case-sensitive: category names are identifiers shared with
// other systems, not free text.
func IsCategory(s string) bool {
	_, ok := categoryIndex[s]
	return ok
}

// CategoryLabel returns "" for anything that is not a category, rather
// than echoing the input, so that a typo cannot pass for a real label.
func CategoryLabel(c string) string {
	if i, ok := categoryIndex[c]; ok {
		return categoryList[i].label
	}
	return ""
}
