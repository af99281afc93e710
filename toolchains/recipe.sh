# shellcheck shell=sh
# The recipe reader of the sh side: toolchains/<target>.env and distros/<board>/board.env.
# Sourced (. toolchains/recipe.sh), POSIX sh (dash, busybox sh, bash).  The Python side is
# read_recipe() in toolchains/targets.py: the same rules, the same messages (the tests
# compare both readers on every recipe and on each kind of bad line).
#
# A recipe is data, not a script.  Each line is one of
#   (blank)                  nothing, or only spaces and tabs
#   # a comment              spaces and tabs may come before the #
#   NAME="value"             NAME: an upper-case letter, then A-Z, 0-9, _ (not one of the
#                            shell's own variables below); value: any characters but
#                            $ ` \ and " (nothing in it is expanded: what is written is
#                            what is assigned)
# anything else is refused with "recipe: FILE:LINE: why", and nothing after it is read.
# Such a file is also valid sh meaning the same thing, but it is never sourced nor given
# to eval: each value is assigned with read, which takes it as it is.
#
#   recipe_read FILE [NAME=VALUE...]
#       assigns FILE's NAME="value" lines in this shell, then each NAME=VALUE argument:
#       an override a caller passes (from its environment, say) for a NAME the file
#       has; VALUE is taken as it is, whatever characters it holds (one line).
#   recipe_resolve PYTHON [TARGET]
#       the same for the output of `PYTHON toolchains/targets.py --shell TARGET` (run
#       from the checkout's top): the target's recipe resolved for this machine and
#       environment, in the same format.
# Both return 1 after saying why on stderr.  recipe_names then holds the names the
# recipe assigned, in its order.
#   recipe_show
#       prints NAME=value for each of recipe_names, with the value it has now (a
#       report, one line each, not a recipe: an override's value is shown as it is).

# The shell's own variables, and the locale (LANG, LC_*): a recipe setting them would
# change how everything after it runs.  targets.py's RESERVED_NAMES is the same list.
recipe_reserved=" CDPATH ENV HOME IFS LANG LINENO OLDPWD OPTARG OPTIND PATH PPID PS1 PS2 PS4 PWD SHELL "
recipe_blanks=$(printf ' \t')

recipe_read() {
    if [ $# = 0 ]; then
        echo "usage: recipe_read FILE [NAME=VALUE...]" >&2
        return 2
    fi
    _recipe_file=$1
    shift
    if [ ! -f "$_recipe_file" ] || [ ! -r "$_recipe_file" ]; then
        echo "recipe: $_recipe_file: no such readable file" >&2
        return 1
    fi
    _recipe_label=$_recipe_file
    _recipe_parse < "$_recipe_file" || return 1
    for _recipe_override in "$@"; do
        _recipe_name=${_recipe_override%%=*}
        _recipe_value=${_recipe_override#*=}
        _recipe_where="$_recipe_file: override"
        if [ "$_recipe_name" = "$_recipe_override" ]; then
            echo "recipe: $_recipe_where '$_recipe_override' is not NAME=VALUE" >&2
            return 1
        fi
        _recipe_check_name || return 1
        case " $recipe_names " in
            *" $_recipe_name "*) ;;
            *) echo "recipe: $_recipe_where: $_recipe_name is not a name of the recipe" >&2
               return 1 ;;
        esac
        case $_recipe_value in
            *"
"*) echo "recipe: $_recipe_where: $_recipe_name: a value is one line" >&2
                return 1 ;;
        esac
        _recipe_assign
    done
}

recipe_resolve() {
    if [ $# = 0 ] || [ $# -gt 2 ]; then
        echo "usage: recipe_resolve PYTHON [TARGET]" >&2
        return 2
    fi
    _recipe_resolved=$("$1" toolchains/targets.py --shell ${2:+"$2"}) || return 1
    _recipe_label="targets.py --shell"
    _recipe_parse <<EOF
$_recipe_resolved
EOF
}

recipe_show() {
    # Exported in a subshell only, for printenv to print (sh has no other way to read a
    # variable whose name is in a variable, but eval).
    (
        for _recipe_name in $recipe_names; do
            export "${_recipe_name:?}"
            printf '%s=%s\n' "$_recipe_name" "$(printenv "$_recipe_name")"
        done
    )
}

# _recipe_parse < RECIPE: every line checked, then assigned; $_recipe_label names the
# recipe in errors.
_recipe_parse() {
    recipe_names=""
    _recipe_number=0
    while IFS= read -r _recipe_line || [ -n "$_recipe_line" ]; do
        _recipe_number=$((_recipe_number + 1))
        _recipe_where="$_recipe_label:$_recipe_number"
        # Blank, or a comment: what is left once the leading blanks are gone.
        _recipe_trimmed=${_recipe_line#"${_recipe_line%%[!"$recipe_blanks"]*}"}
        case $_recipe_trimmed in
            "" | "#"*) continue ;;
        esac
        case $_recipe_line in
            *=*) ;;
            *) echo "recipe: $_recipe_where: not a NAME=\"value\" line" >&2
               return 1 ;;
        esac
        _recipe_name=${_recipe_line%%=*}
        _recipe_value=${_recipe_line#*=}
        _recipe_check_name || return 1
        case $_recipe_value in
            \"*\") ;;
            *) echo "recipe: $_recipe_where: $_recipe_name: the value is not in double quotes" >&2
               return 1 ;;
        esac
        _recipe_value=${_recipe_value#\"}
        _recipe_value=${_recipe_value%\"}
        case $_recipe_value in
            *\"* | *\$* | *\`* | *\\*)
                echo "recipe: $_recipe_where: $_recipe_name: a value cannot hold \$ \` \\ or \" (nothing in it is expanded)" >&2
                return 1 ;;
        esac
        _recipe_assign
        recipe_names="${recipe_names:+$recipe_names }$_recipe_name"
    done
}

# _recipe_check_name: $_recipe_name is a name a recipe may set.
_recipe_check_name() {
    case $_recipe_name in
        "" | [!ABCDEFGHIJKLMNOPQRSTUVWXYZ]* | *[!ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_]*)
            echo "recipe: $_recipe_where: bad name '$_recipe_name' (A-Z, then A-Z, 0-9, _)" >&2
            return 1 ;;
        LC_*)
            echo "recipe: $_recipe_where: $_recipe_name is the shell's own, not a recipe's" >&2
            return 1 ;;
    esac
    case $recipe_reserved in
        *" $_recipe_name "*)
            echo "recipe: $_recipe_where: $_recipe_name is the shell's own, not a recipe's" >&2
            return 1 ;;
    esac
}

# _recipe_assign: $_recipe_name (checked) = $_recipe_value, taken as it is: read assigns
# the line it is given and expands nothing in it (a here-document's expansion is not
# expanded again).
_recipe_assign() {
    IFS= read -r "${_recipe_name:?}" <<EOF
$_recipe_value
EOF
}
