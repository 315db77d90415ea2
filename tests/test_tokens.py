from refinedweb.stages.tokens import count_tokens, encode


def test_gpt2_token_ids_match_published_vocabulary():
    assert encode("Hello world") == [15496, 995]
    assert encode(" the") == [262]
    assert count_tokens("") == 0


def test_token_count_of_a_sentence():
    assert count_tokens("The RefinedWeb dataset for Falcon LLM.") == 10
