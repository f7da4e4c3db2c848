"""Text for synthetic training speech: English and Mandarin, written for phonetic variety
(bilabials, rounded and spread vowels, fricatives, Mandarin initials/finals and all four tones),
and a few sentences each of French, German and Spanish, so that the lips close on bilabials and
round on rounded vowels whatever the language."""

ENGLISH = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back when you have a moment to spare.",
    "We moved the meeting to Monday morning at nine.",
    "Bob bought a bright blue boat from the bay market.",
    "She sells sea shells by the sea shore every summer.",
    "How about a cup of hot cocoa before bed?",
    "Food for thought: who knew the moon would look so full?",
    "Five vivid violins filled the valley with music.",
    "I think these three things are worth the effort.",
    "Could you open the window, it is getting warm in here?",
    "My mother makes marvellous mashed potatoes.",
    "Welcome to the show, where we talk about the weather.",
    "Yesterday was a beautiful day for a long walk.",
    "Red leather, yellow leather, red leather, yellow leather.",
    "Peter picked a peck of pickled peppers.",
    "The rain in Spain stays mainly in the plain.",
    "Out of the blue, a loud boom shook the room.",
    "Each of the eight players received a yellow card.",
    "Good morning, everybody, and thank you for joining us today.",
    "Our new product will change the way you work.",
    "Is it true that owls can turn their heads all the way around?",
    "Wow, that was amazing! Let's do it again.",
    "Measure twice and cut once, as my father would say.",
    "Jim and Jane enjoyed a jazz concert in June.",
    "The chef chose cheese, cherries and chocolate.",
    "Breathe in, breathe out, and relax your shoulders.",
    "Numbers like one, two, three, four and five are easy.",
    "Artificial intelligence is a powerful tool for good.",
    "Please remember to bring your passport and your ticket.",
    "Hmm, maybe we should wait and see what happens.",
    "Ouch, that hurt more than I expected.",
    "The vast majority of voters were very happy.",
    "Whether or not it rains, we will go to the beach.",
    "Think about the bigger picture for a minute.",
    "Zebras, giraffes and hippos live on the savanna.",
    "All of a sudden, the lights went out.",
    "Opportunities multiply as they are seized.",
    "Your order will arrive within two business days.",
    "Let me know if there is anything else I can do for you.",
    "A warm welcome to all our listeners around the world.",
)

MANDARIN = (
    "你好，很高兴认识你。",
    "今天天气很好，我们去公园散步吧。",
    "请问，火车站怎么走？",
    "我喜欢吃北京烤鸭和饺子。",
    "妈妈骑马，马慢，妈妈骂马。",
    "四是四，十是十，十四是十四，四十是四十。",
    "欢迎收看今天的新闻节目。",
    "学习中文需要很多耐心。",
    "这个问题我们明天再讨论。",
    "他每天早上六点起床跑步。",
    "谢谢大家的支持和帮助。",
    "我们的产品质量非常可靠。",
    "春天来了，花都开了。",
    "你吃饭了吗？我已经吃过了。",
    "这本书的内容非常丰富。",
    "请把窗户打开，房间里太热了。",
    "人工智能正在改变我们的生活。",
    "八百标兵奔北坡，炮兵并排北边跑。",
    "吃葡萄不吐葡萄皮，不吃葡萄倒吐葡萄皮。",
    "我们一起努力，一定会成功的。",
    "飞机晚点了，我们只好在机场等待。",
    "这家餐厅的服务员非常热情。",
    "孩子们在操场上快乐地玩耍。",
    "法律面前人人平等。",
    "请大家保持安静，会议马上开始。",
    "医生建议我多喝水，多休息。",
    "上海是一个国际化的大城市。",
    "他说话的声音很温柔。",
    "我们下周去旅游，你想一起去吗？",
    "周末愉快，我们下次再见。",
)


FRENCH = (
    "Bonjour à tous, merci d'être venus ce matin.",
    "Le petit bateau bleu flotte sur la mer.",
    "Pouvez-vous me passer le pain et le beurre, s'il vous plaît ?",
    "Nous partons en vacances au mois de juillet.",
    "Où est la boulangerie la plus proche ?",
    "Mon frère boit un verre de vin rouge.",
    "Les enfants jouent dans le jardin public.",
    "Il fait beau aujourd'hui, allons nous promener.",
)

GERMAN = (
    "Guten Morgen, wie geht es Ihnen heute?",
    "Mein Bruder wohnt in einem kleinen Dorf am Meer.",
    "Bitte bringen Sie mir ein Glas Wasser.",
    "Wir fahren morgen mit dem Zug nach München.",
    "Die Blumen blühen schön im Frühling.",
    "Können Sie mir den Weg zum Bahnhof zeigen?",
    "Der Hund spielt mit einem roten Ball.",
    "Vielen Dank für Ihre freundliche Hilfe.",
)

SPANISH = (
    "Buenos días, ¿cómo está usted?",
    "Mi madre prepara una paella muy buena.",
    "Por favor, abra la ventana, hace mucho calor.",
    "El barco blanco navega por el mar.",
    "Vamos a comprar pan y fruta en el mercado.",
    "¿Dónde está la estación de autobuses?",
    "Me gusta mucho bailar y cantar con mis amigos.",
    "Muchas gracias por su ayuda, hasta mañana.",
)


def corpus() -> list[tuple[str, str]]:
    """(language, sentence) pairs, language ``en``, ``zh``, ``fr``, ``de`` or ``es``."""
    pools = {"en": ENGLISH, "zh": MANDARIN, "fr": FRENCH, "de": GERMAN, "es": SPANISH}
    return [(lang, s) for lang, pool in pools.items() for s in pool]
