package decision

import "github.com/arbiter-nba/arbiter/catalog"

// Title is how a rep tool names an action in a suggestion: the catalog's
// title when it has one, else its channel and topic in words ("Email:
// Cardiolex efficacy", "Rep visit: Glucanor", "Rep visit" without a topic).
func Title(a *catalog.Action) string {
	if a.Title != "" {
		return a.Title
	}
	t := capitalize(label(a.Channel))
	if a.Topic != "" {
		t += ": " + capitalize(humanize(a.Topic))
	}
	return t
}
