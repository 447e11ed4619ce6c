package server

import (
	"testing"

	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// A page's suggestions are ranked by score, best first (ties by HCP id),
// and banded in thirds: HIGH, MEDIUM, LOW.
func TestRankSuggestions(t *testing.T) {
	var page []*nbapb.Suggestion
	for i, sc := range []float64{0.5, 3, 1, 2, 2, 0.1} {
		page = append(page, &nbapb.Suggestion{HcpId: string(rune('a' + i)), Score: sc})
	}
	rankSuggestions(page)
	want := []struct {
		hcp      string
		priority nbapb.SuggestionPriority
	}{
		{"b", nbapb.SuggestionPriority_SUGGESTION_PRIORITY_HIGH}, {"d", nbapb.SuggestionPriority_SUGGESTION_PRIORITY_HIGH},
		{"e", nbapb.SuggestionPriority_SUGGESTION_PRIORITY_MEDIUM}, {"c", nbapb.SuggestionPriority_SUGGESTION_PRIORITY_MEDIUM},
		{"a", nbapb.SuggestionPriority_SUGGESTION_PRIORITY_LOW}, {"f", nbapb.SuggestionPriority_SUGGESTION_PRIORITY_LOW},
	}
	for i, s := range page {
		if s.GetHcpId() != want[i].hcp || s.GetPriority() != want[i].priority || s.GetRank() != int32(i+1) {
			t.Errorf("%d: %s rank %d %s; want %s rank %d %s", i, s.GetHcpId(), s.GetRank(), s.GetPriority(), want[i].hcp, i+1, want[i].priority)
		}
	}
	one := []*nbapb.Suggestion{{HcpId: "x"}}
	if rankSuggestions(one); one[0].GetPriority() != nbapb.SuggestionPriority_SUGGESTION_PRIORITY_HIGH {
		t.Errorf("a page of one: %s, want HIGH", one[0].GetPriority())
	}
}
