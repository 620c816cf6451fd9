"""The substitution engine, case by case (Octostache's documented behaviour and public test cases)."""

import base64
import datetime

import pytest

from deployments.services.octostache import SubstitutionError, VariableDictionary

ACTIONS = {
    "Octopus.Action[Package A].Name": "A",
    "Octopus.Action[Package B].Name": "B",
    "Octopus.Action[].Name": "Blank",
}
SHIRT = "{Name: 't-shirt', Sizes: [{size: 'small', price: 15.00}, {size: 'large', price: 20.00}]}"

CASES = [
    # plain, nested, unknown, escaped
    ("plain", "Hello #{Name}", {"Name": "World"}, "Hello World"),
    ("names are case-insensitive", "#{name}", {"Name": "World"}, "World"),
    ("whitespace inside braces", "#{  Name }", {"Name": "World"}, "World"),
    (
        "nested value",
        "#{Greeting}",
        {"Greeting": "Hello #{Octopus.Environment.Name}", "Octopus.Environment.Name": "Production"},
        "Hello Production",
    ),
    ("nested twice", "#{A}", {"A": "a#{B}", "B": "b#{C}", "C": "c"}, "abc"),
    ("unknown left as written", "x #{Missing} y", {}, "x #{Missing} y"),
    ("unknown with a filter left as written", "#{Missing | ToUpper}", {}, "#{Missing | ToUpper}"),
    ("unknown filter left as written", "#{Foo | ToBazooka 6}", {"Foo": "Abc"}, "#{Foo | ToBazooka 6}"),
    ("escaped", "##{Name}", {"Name": "x"}, "#{Name}"),
    ("unclosed", "#{Name", {"Name": "x"}, "#{Name"),
    (
        "output variable",
        "#{Octopus.Action[Step 1].Output.Colour}",
        {"Octopus.Action[Step 1].Output.Colour": "blue"},
        "blue",
    ),
    (
        "reference inside an index",
        "#{Server[#{Continent}]}",
        {"Server[Asia]": "Beijing", "Continent": "Asia"},
        "Beijing",
    ),
    # filters
    ("ToUpper", "#{Foo | ToUpper}", {"Foo": "Abc"}, "ABC"),
    ("ToLower", "#{Foo | ToLower}", {"Foo": "Abc"}, "abc"),
    ("filters in order", "#{Foo|ToUpper|ToLower}", {"Foo": "Abc"}, "abc"),
    ("chained", "#{X | Trim | ToUpper}", {"X": "  padded  "}, "PADDED"),
    ("ToBase64", "#{String | tobase64}", {"String": "Foo Bar"}, "Rm9vIEJhcg=="),
    ("FromBase64", "#{String | FromBase64}", {"String": "Rm9vIEJhcg=="}, "Foo Bar"),
    ("FromBase64 of garbage is echoed", "#{String | FromBase64}", {"String": "!!"}, "#{String | FromBase64}"),
    ("HtmlEscape", "#{Foo | HtmlEscape}", {"Foo": "A&'bc<>\""}, "A&amp;&apos;bc&lt;&gt;&quot;"),
    ("XmlEscape", "#{Foo | XmlEscape}", {"Foo": "A&'bc"}, "A&amp;&apos;bc"),
    ("JsonEscape", "#{Foo | JsonEscape}", {"Foo": 'Test"\\\n\r\t'}, 'Test\\"\\\\\\n\\r\\t'),
    ("YamlSingleQuoteEscape", "#{Foo | YamlSingleQuoteEscape}", {"Foo": "single'quote"}, "single''quote"),
    (
        "YamlSingleQuoteEscape line breaks",
        "#{Foo | YamlSingleQuoteEscape}",
        {"Foo": "a\n\r\nb\n\tc"},
        "a\n\n\r\nb\n\n\tc",
    ),
    (
        "YamlDoubleQuoteEscape",
        "#{Foo | YamlDoubleQuoteEscape}",
        {"Foo": "a\"\\\t\n\r\n'我"},
        "a\\\"\\\\\\t\\n\\r\\n'\\u6211",
    ),
    ("Trim", "#{foo | Trim}", {"foo": " Octopus Deploy "}, "Octopus Deploy"),
    ("Trim start", "#{foo | Trim start}", {"foo": " Octopus Deploy "}, "Octopus Deploy "),
    ("Trim End", "#{foo | Trim End}", {"foo": " Octopus Deploy "}, " Octopus Deploy"),
    ("Trim with a bad option", "#{foo | Trim Both}", {"foo": " x "}, "#{foo | Trim Both}"),
    ("Truncate", "#{foo | Truncate 7}", {"foo": "Octopus Deploy"}, "Octopus..."),
    ("Truncate longer than the value", "#{foo | Truncate 50}", {"foo": "Octopus Deploy"}, "Octopus Deploy"),
    ("Truncate without a length", "#{foo | Truncate}", {"foo": "Octopus Deploy"}, "#{foo | Truncate}"),
    ("Truncate negative", "#{foo | Truncate -1}", {"foo": "Octopus Deploy"}, "#{foo | Truncate -1}"),
    ("Substring length", "#{foo | Substring 7}", {"foo": "Octopus Deploy"}, "Octopus"),
    ("Substring start and length", "#{foo | Substring 8 6}", {"foo": "Octopus Deploy"}, "Deploy"),
    ("Substring out of range", "#{foo | Substring 8 7}", {"foo": "Octopus Deploy"}, "#{foo | Substring 8 7}"),
    ("Substring then Trim", "#{foo | Substring 8 | Trim}", {"foo": "Octopus Deploy"}, "Octopus"),
    ("Replace", "#{foo | Replace abc def}", {"foo": "abc"}, "def"),
    ("Replace with nothing", "#{foo | Replace a}", {"foo": "abc"}, "bc"),
    ("Replace is case-sensitive", "#{foo | Replace abc def}", {"foo": "ABC"}, "ABC"),
    ("Replace with quoted spaces", '#{foo | Replace "ab c" "d ef"}', {"foo": "ab c"}, "d ef"),
    ("Replace a regular expression", '#{foo | Replace "[a-z]+" 1}', {"foo": "a'b"}, "1'1"),
    ("Replace with groups", '#{foo | Replace "o(.+)o([a-z]*)s" "o$2o$1s"}', {"foo": "opuocts"}, "octopus"),
    (
        "Replace with variable options",
        "#{foo | Replace #{regex}#{replacement}}",
        {"foo": "abc", "regex": "b", "replacement": "x"},
        "axc",
    ),
    ("Replace without options", "#{foo | Replace}", {"foo": "abc"}, "#{foo | Replace}"),
    ("Format currency", "#{Cash | Format C}", {"Cash": "23.4"}, "$23.40"),
    ("Format a number", "#{Cash | Format N1}", {"Cash": "1234.56"}, "1,234.6"),
    ("Format a custom number", "#{Cash | Format 0.000}", {"Cash": "3.5"}, "3.500"),
    ("Format a date", '#{Foo | Format Date "HH dd-MMM-yyy"}', {"Foo": "2030/05/22 09:05:00"}, "09 22-May-2030"),
    (
        "Format a date with a nested format",
        "#{Foo | Format Date #{Format}}",
        {"Foo": "2030/05/22 09:05:00", "Format": "HH dd-MMM-yyyy"},
        "09 22-May-2030",
    ),
    ("Format falls back to a date", "#{ Date | Format yyyy}", {"Date": "2030/05/22 09:05:00"}, "2030"),
    ("Format of text is echoed", "#{Invalid | Format yyyy}", {"Invalid": "hello World"}, "#{Invalid | Format yyyy}"),
    ("NowDate formatted", "#{ | NowDate yyyy-MM-dd}", {}, "2030-05-22"),
    ("NowDateUtc formatted", '#{ | NowDateUtc "HH:mm zzz"}', {}, "09:05 +00:00"),
    ("NowDate chained", "#{ | NowDateUtc | Format Date MMM}", {}, "May"),
    # conditionals
    ("if", "#{if Truthy}#{Result}#{/if}", {"Result": "result", "Truthy": "true"}, "result"),
    ("if false", "#{if Truthy}#{Result}#{/if}", {"Result": "result", "Truthy": "False"}, ""),
    ("if unknown is false", "#{if Missing}yes#{else}no#{/if}", {}, "no"),
    ("unless", "#{unless Truthy}#{Result}#{/unless}", {"Result": "result", "Truthy": "false"}, "result"),
    ("else", "#{if Truthy}a#{else}b#{/if}", {"Truthy": "0"}, "b"),
    ("equals a string", '#{if Octopus == "octopus"}yes#{/if}', {"Octopus": "octopus"}, "yes"),
    (
        "equals another variable",
        "#{if Octopus == Compare}yes#{/if}",
        {"Octopus": "octopus", "Compare": "octopus"},
        "yes",
    ),
    ("not equal", '#{if Octopus != "software"}yes#{/if}', {"Octopus": "octopus"}, "yes"),
    (
        "nested conditionals",
        '#{if Truthy}#{if Fooey=="foo"}#{Result}#{/if}#{/if}',
        {"Truthy": "true", "Fooey": "foo", "Result": "r"},
        "r",
    ),
    ("if inside else", '#{if Truthy}a#{else}#{if Fooey=="foo"}b#{/if}#{/if}', {"Truthy": "no", "Fooey": "foo"}, "b"),
    # loops
    (
        "each over comma-separated values",
        "#{each a in Numbers}#{a} First:#{Octopus.Template.Each.First} "
        "Last:#{Octopus.Template.Each.Last} Index:#{Octopus.Template.Each.Index}, #{/each}",
        {"Numbers": "A,B,C"},
        "A First:True Last:False Index:0, B First:False Last:False Index:1, C First:False Last:True Index:2, ",
    ),
    ("each over nothing", "Ok#{each nothing in missing}#{nothing}#{/each}", {}, "Ok"),
    (
        "each over an indexed collection",
        "#{each a in Octopus.Action}#{a}-#{a.Name}#{/each}",
        ACTIONS,
        "Package A-APackage B-B-Blank",
    ),
    (
        "nested each",
        "#{each a in Octopus.Action}#{each tr in a.TargetRoles}#{a.Name}#{tr}#{/each}#{/each}",
        {
            "Octopus.Action[A].Name": "A",
            "Octopus.Action[A].TargetRoles": "a,b",
            "Octopus.Action[B].Name": "B",
            "Octopus.Action[B].TargetRoles": "c",
        },
        "AaAbBc",
    ),
    (
        "each with an index reference inside",
        '#{each action in Octopus.Action}#{if Octopus.Step[#{action.StepName}].Status != "Skipped"}'
        "#{Octopus.Step[#{action.StepName}].Details}#{/if}#{/each}",
        {
            "Octopus.Action[Action 1].StepName": "Step 1",
            "Octopus.Action[Action 2].StepName": "Step 2",
            "Octopus.Step[Step 1].Details": "Step 1 Details",
            "Octopus.Step[Step 2].Details": "Step 2 Details",
            "Octopus.Step[Step 1].Status": "Skipped",
            "Octopus.Step[Step 2].Status": "Running",
        },
        "Step 2 Details",
    ),
    (
        "each over a JSON array",
        "#{each item in Items}#{item.Name};#{/each}",
        {"Items": '[{"Name": "a"}, {"Name": "b"}]'},
        "a;b;",
    ),
    (
        "each over a JSON object",
        "#{each x in Json}[#{x.Key}=#{x.Value}]#{/each}",
        {"Json": '{"a": "AAA", "b": "BBB"}'},
        "[a=AAA][b=BBB]",
    ),
    (
        "Key of an indexed collection",
        "#{each x in Simple}[#{x.Key}]#{/each}",
        {"Simple[a]": "5", "Simple[b]": "7"},
        "[a][b]",
    ),
    # JSON
    ("JSON property", "#{Custom.Json.Name}", {"Custom.Json": SHIRT}, "t-shirt"),
    ("JSON array item property", "#{Custom.Json.Sizes[0].price}", {"Custom.Json": SHIRT}, "15.00"),
    ("JSON index notation", "#{Custom.Json.[Sizes][0][price]}", {"Custom.Json": SHIRT}, "15.00"),
    ("JSON object as text", "#{Custom.Json.Sizes[1]}", {"Custom.Json": SHIRT}, '{"size": "large", "price": 20.00}'),
    ("JSON top-level array", "#{Json[0].Key}", {"Json": '[{"Key": "first"}]'}, "first"),
    ("JSON null is empty", "Alpha#{Foo.Bar | ToUpper}bet", {"Foo": "{Bar: null}"}, "Alphabet"),
    (
        "an explicit variable beats a JSON path",
        "#{Custom.Json.Name}",
        {"Custom.Json": SHIRT, "Custom.Json.Name": "pants"},
        "pants",
    ),
    ("a missing JSON key is unknown", "#{Custom.Json.Colour}", {"Custom.Json": SHIRT}, "#{Custom.Json.Colour}"),
]


@pytest.mark.parametrize("template, variables, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_octostache_cases(template, variables, expected):
    now = datetime.datetime(2030, 5, 22, 9, 5, tzinfo=datetime.UTC)
    dictionary = VariableDictionary(variables, now=now)
    if "NowDate " in template and "Utc" not in template:  # local time: compare with the same clock
        expected = now.astimezone().strftime("%Y-%m-%d")
    assert dictionary.evaluate(template) == expected


@pytest.mark.parametrize(
    "variables, named",
    [
        ({"A": "#{A}"}, "A → A"),
        ({"A": "x#{B}", "B": "y#{C}", "C": "#{A}"}, "A → B → C → A"),
    ],
)
def test_a_cycle_is_a_clear_error(variables, named):
    with pytest.raises(SubstitutionError, match=named):
        VariableDictionary(variables).evaluate("#{A}")
    values, errors = VariableDictionary(dict(variables, Other="fine")).resolved()
    assert values["Other"] == "fine" and any(named in e for e in errors)


def test_values_derived_from_sensitive_ones_are_sensitive_too():
    secret = "hunter2-Secret"
    dictionary = VariableDictionary(
        {
            "Password": secret,
            "Encoded": "#{Password | ToBase64}",
            "Plain": "x",
            "Json": '{"pw": "inner-Secret"}',
            "Connection": "user=sa;pw=#{Password}",
        },
        sensitive={secret, '{"pw": "inner-Secret"}'},
    )
    text = dictionary.evaluate("#{Password | ToUpper} #{Encoded} #{Plain | ToUpper} #{Json.pw} #{Connection}")
    encoded = base64.b64encode(secret.encode()).decode()
    assert text == f"HUNTER2-SECRET {encoded} X inner-Secret user=sa;pw={secret}"
    assert {"HUNTER2-SECRET", encoded, "inner-Secret"} <= dictionary.derived_sensitive
    assert "X" not in dictionary.derived_sensitive
    values, _ = dictionary.resolved()
    assert dictionary.is_sensitive(values["Encoded"])


def test_runaway_templates_stop_with_a_clear_error():
    deep = {f"V{i}": f"#{{V{i + 1}}}" for i in range(300)}
    with pytest.raises(SubstitutionError, match="more than 100 deep"):
        VariableDictionary(deep).evaluate("#{V0}")
    items = ",".join(str(i) for i in range(400))
    with pytest.raises(SubstitutionError, match="loop iterations"):
        VariableDictionary({"L": items}).evaluate("#{each a in L}#{each b in L}#{/each}#{/each}")
    with pytest.raises(SubstitutionError, match="characters"):
        VariableDictionary({"L": items, "Big": "x" * 30000}).evaluate("#{each a in L}#{Big}#{/each}")
