// Package scoring is the decision core's arithmetic: the weighted engagement
// model that turns an HCP's features and a candidate action into a score,
// and the partial top-k that ranks candidates.
//
// For a candidate action on channel c with purpose p, asked for by a caller
// of kind k:
//
//	logit      = bias[c] + sum_f w[c][f]*x[f] + w_topic[c]*topic_affinity + w_spec[c]*specialty_match
//	propensity = 1 / (1 + exp(-logit))
//	score      = propensity * value * context[k][c] * lever[p]
//
// This is Pega's arbitration (propensity x context weight x value x levers).
// x is the HCP's feature vector, computed once per decision by Vectorize;
// the HCP-only part of the logit is computed once per channel per decision,
// so each candidate costs a handful of multiply-adds and one exp.
//
// # The medical/commercial firewall
//
// Medical-purpose actions are scored with their channel's "medical" block
// of weights when it has one, and otherwise with its main block. Either
// way, the weights that score a medical action may name only features on
// the model's medical allowlist (DefaultMedicalAllowlist unless the file's
// "allowlist" says otherwise; segments and attr.* can never be on it):
// prescribing potential and commercial segments never steer medical
// contact. Parse refuses a medical block that breaks the allowlist, and a
// definitions set whose catalog has medical actions on a channel whose main
// block breaks it (Model.MedicalViolations).
//
// The package is pure Go: no I/O, no protobuf, no Redis. Rank does not
// allocate; a Model is immutable after Parse and safe for concurrent use.
package scoring
