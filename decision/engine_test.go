package decision

// The rules engine registers itself with package rules (the tests of the
// rules' effects parse rules files).
import _ "github.com/arbiter-nba/arbiter/celrules"
