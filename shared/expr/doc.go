// Package expr is the expression language of runbook.yml: the conditions of
// `if:` and the `${{ ... }}` parts of deferred values. It follows GitHub
// Actions expressions where our users would expect it to, and differs where
// noted below.
//
// # Grammar
//
// In EBNF as used by the Go specification. Tokens may be separated by white
// space (space, tab, CR, LF).
//
//	Template   = { text | "${{" Expression "}}" } .
//	Condition  = Expression | "${{" Expression "}}" .
//
//	Expression = Or .
//	Or         = And { "||" And } .
//	And        = Not { "&&" Not } .
//	Not        = "!" Not | Comparison .
//	Comparison = Primary [ CompareOp Primary ] .
//	CompareOp  = "==" | "!=" | "<" | "<=" | ">" | ">=" .
//	Primary    = Literal | Reference | Call | "(" Expression ")" .
//	Literal    = String | Number | "true" | "false" | "null" .
//	Reference  = Name { "." Name | "[" String "]" } .
//	Call       = Function "(" [ Expression { "," Expression } ] ")" .
//	Function   = "success" | "failure" | "always" | "cancelled"
//	           | "contains" | "startsWith" | "endsWith" .
//	Name       = ( letter | "_" ) { letter | digit | "_" | "-" } .
//	Number     = [ "-" ] digit { digit } [ "." digit { digit } ] .
//	String     = "'" { character other than "'" | "''" } "'" .
//
// text is any run of characters without "${{"; letter and digit are ASCII.
// The first Name of a Reference is not one of the keywords true, false and
// null; after "." any Name is a property name. "!" binds more loosely than a
// comparison (unlike GitHub): !a == b means !(a == b), and a negated
// comparison operand needs parentheses: a == (!b). Comparisons do not chain:
// a == b == c is an error, (a == b) == c is not. The index form of a
// Reference exists for names that contain dots:
// steps['deploy.migrate'].outputs.version is the path
// ["steps", "deploy.migrate", "outputs", "version"].
//
// In a Template the text outside "${{ }}" is taken as is. There is no escape
// for a literal "${{" ("$${{" is "$" followed by an expression); write the
// expression ${{ '${{' }} instead. A "}}" inside a string literal does not end
// the expression.
//
// # Semantics
//
// A Value is null, a bool, a number (float64) or a string. false, 0, "" and
// null are falsy (so is NaN), everything else is truthy. As a string, null is
// "", bools are "true" and "false", numbers have no trailing zeros (1.5, 2,
// -0.25), strings are themselves; a Template renders each part this way.
//
// == and != compare values of the same kind directly (strings case-sensitively,
// unlike GitHub). A number and a string compare numerically when the string
// holds a decimal number (optional sign, fraction and exponent, surrounding
// white space ignored; no hex, Inf or NaN); a bool and a string compare the
// string with "true" or "false"; null equals only null; any other mix is
// unequal, not an error. <, <=, > and >= order two numbers, two strings
// (byte-wise), or a number and a numeric string (numerically); anything else
// is an evaluation error. && and || short-circuit and yield bools.
//
// contains, startsWith and endsWith convert their arguments to strings and are
// case-sensitive (GitHub's are not). The status functions read
// [Context.Status]: success() is true when every dependency succeeded (none
// failed, was skipped or cancelled) and the run is not cancelled, failure() when a dependency failed and the run is not
// cancelled, cancelled() when the run is cancelled, always() always.
//
// As on GitHub, a condition that calls no status function is meant as
// success() && (condition): a step whose dependency failed is skipped unless
// its condition asks about failure. Parse and ParseCondition return the
// expression as written; [Expr.UsesStatus] tells whether the rule applies and
// [Expr.ImplicitSuccess] applies it.
//
// # Limits and errors
//
// An expression is at most [MaxSourceLen] bytes and nests at most [MaxDepth]
// levels of parentheses, "!" and function calls; a Template holds at most
// [MaxTemplateParts] expressions. Every error is an [*Error] with the byte
// offset into the source that was parsed, so a caller can point at the column.
//
// A parsed Expr or Template is immutable and safe for concurrent use.
package expr
