//! Layers 4 and 5: policy evaluation and violations. Filled by the policy-engine issue.
